package caracaltest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/caracal-go/caracal/caracaltest"
)

// A rotation signs new tokens with a new key; the JWKS serves the previous
// key beside it for 24 h, so that tokens signed before the rotation still
// verify.
func ExampleStack_RotateSigningKey() {
	clock := caracaltest.NewFakeClock(time.Now())
	st, err := caracaltest.New(caracaltest.WithClock(clock))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	hc := st.HTTPClient()
	keys := func() []string {
		resp, err := hc.Get(st.STSURL() + "/.well-known/jwks.json?zone_id=" + st.Zone())
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct{ Keys []struct{ Kid string } }
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			log.Fatal(err)
		}
		kids := make([]string, len(set.Keys))
		for i, k := range set.Keys {
			kids[i] = k.Kid
		}
		return kids
	}

	// The zone's key is published on its first token exchange.
	c, err := st.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	root, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_ = root.Close(ctx)
	_ = c.Close(ctx)
	before := keys()
	fmt.Println("keys:", len(before))

	kid := st.RotateSigningKey()
	after := keys()
	fmt.Println("keys after the rotation:", len(after))
	fmt.Println("new key first:", after[0] == kid, "then the previous one:", after[1] == before[0])

	clock.Advance(24 * time.Hour)
	fmt.Println("keys 24 h later:", len(keys()))
	// Output:
	// keys: 1
	// keys after the rotation: 2
	// new key first: true then the previous one: true
	// keys 24 h later: 1
}
