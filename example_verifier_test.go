package caracal_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/caracal-go/caracal"
)

// apiKeys is a Verifier for bearers an organisation issues itself: here a
// fixed table, in practice a lookup in its own token service.
type apiKeys map[string]caracal.Claims

func (k apiKeys) Verify(_ context.Context, token string) (caracal.Claims, error) {
	cl, ok := k[token]
	if !ok {
		return caracal.Claims{}, errors.New("unknown key")
	}
	return cl, nil
}

func ExampleWithVerifier() {
	st, c := exampleStack()
	defer st.Close()
	defer c.Close(context.Background())

	keys := apiKeys{"key-1": {ZoneID: "zone-test", ApplicationID: "app-reports", SessionID: "sess-42", Scopes: []string{"reports:read"}}}
	mw, err := c.Middleware(caracal.WithVerifier(keys))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := caracal.FromContext(r.Context())
		fmt.Println("handler: session", a.SessionID(), "of", a.ApplicationID())
	})))
	defer srv.Close()

	for _, key := range []string{"key-1", "key-2"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/reports", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(key, resp.StatusCode)
	}
	// Output:
	// handler: session sess-42 of app-reports
	// key-1 200
	// key-2 401
}
