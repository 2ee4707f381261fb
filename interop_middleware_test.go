package caracal_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// The middleware hands the handler the server's own ResponseWriter and
// request, so net/http's wrappers and the ResponseWriter's optional
// interfaces work on either side of it.
func TestMiddlewareWithStandardHandlers(t *testing.T) {
	_, c := newStack(t)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)

	bound := func(w http.ResponseWriter, r *http.Request) bool {
		if _, ok := caracal.FromContext(r.Context()); !ok {
			http.Error(w, "unbound", http.StatusInternalServerError)
			return false
		}
		return true
	}
	mux := http.NewServeMux()
	mux.Handle("GET /s/items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bound(w, r) {
			_, _ = io.WriteString(w, r.PathValue("id"))
		}
	}))
	mux.Handle("GET /outer/strip/", http.StripPrefix("/outer/strip", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bound(w, r) {
			_, _ = io.WriteString(w, r.URL.Path)
		}
	}))))
	mux.Handle("GET /items/{id}", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bound(w, r) {
			_, _ = io.WriteString(w, r.PathValue("id"))
		}
	})))
	mux.Handle("GET /flush", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bound(w, r) {
			return
		}
		_, isFlusher := w.(http.Flusher)
		rc := http.NewResponseController(w)
		if !isFlusher || rc.SetWriteDeadline(time.Now().Add(time.Minute)) != nil {
			http.Error(w, "wrapped", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "part;")
		if rc.Flush() != nil {
			return
		}
		_, _ = io.WriteString(w, "rest")
	})))
	mux.Handle("GET /hijack", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bound(w, r) {
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = buf.Flush()
	})))
	mux.Handle("POST /limited", http.MaxBytesHandler(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bound(w, r) {
			return
		}
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})), 4))
	mux.Handle("GET /timeout", http.TimeoutHandler(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bound(w, r) {
			_, _ = io.WriteString(w, "in time")
		}
	})), time.Minute, "late"))
	mux.Handle("GET /strip/", http.StripPrefix("/strip", mw(mux)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	do := func(method, path, body string, withBearer bool) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if withBearer {
			req.Header.Set("Authorization", "Bearer inbound")
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/items/9", "", "9"},
		{"GET", "/strip/s/items/9", "", "9"},
		{"GET", "/outer/strip/x/y", "", "/x/y"},
		{"GET", "/flush", "", "part;rest"},
		{"GET", "/hijack", "", "hijacked"},
		{"POST", "/limited", "abc", "ok"},
		{"GET", "/timeout", "", "in time"},
	} {
		code, body := do(tc.method, tc.path, tc.body, true)
		assert.Equal(t, http.StatusOK, code, "%s %s: %s", tc.method, tc.path, body)
		assert.Equal(t, tc.want, body, tc.path)
	}
	code, body := do("POST", "/limited", "too long", true)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, body)

	// A refusal inside TimeoutHandler or StripPrefix is the middleware's
	// JSON 401.
	for _, p := range []string{"/timeout", "/strip/s/items/9", "/items/9"} {
		code, body := do("GET", p, "", false)
		assert.Equal(t, http.StatusUnauthorized, code, p)
		assert.Contains(t, body, `"error":"missing_token"`, p)
	}
}
