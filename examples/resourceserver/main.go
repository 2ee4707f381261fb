// Command resourceserver is a protected resource behind the Caracal Gateway.
// Its handler runs behind the SDK's middleware, which verifies the Gateway's
// resource token against the STS keys and binds the calling agent into the
// request's context.
//
// On an embedded stack it registers itself as the upstream of
// resource://tickets, lets an agent call it once through the Gateway, shows
// that a request without a valid token is refused, and exits:
//
//	go run ./examples/resourceserver
//
// With CARACAL_* configuration it serves -addr as the upstream of -resource
// until interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/examples/internal/exampleenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "resourceserver:", err)
		os.Exit(1)
	}
}

// tickets is the resource server's own handler: it only ever sees requests
// the middleware verified.
func tickets(say func(string, ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent, ok := caracal.FromContext(r.Context())
		if !ok { // unreachable behind the middleware; kept as a guard
			http.Error(w, "no agent", http.StatusUnauthorized)
			return
		}
		say("  resource server: %s %s by session %s of application %s, delegation %s, hop %d",
			r.Method, r.URL.Path, agent.SessionID(), agent.ApplicationID(), agent.DelegationID(), agent.Hop())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"ticket":     strings.TrimPrefix(r.URL.Path, "/tickets/"),
			"read_by":    agent.SessionID(),
			"delegation": agent.DelegationID(),
		})
	})
}

func run(ctx context.Context, args, environ []string, out io.Writer) (err error) {
	flags := flag.NewFlagSet("resourceserver", flag.ContinueOnError)
	addr := flags.String("addr", "127.0.0.1:0", "address to serve on")
	resource := flags.String("resource", "resource://tickets", "resource identifier this server is the upstream of")
	if err := flags.Parse(args); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	self := "http://" + ln.Addr().String()

	// On an embedded stack, this server is the resource's upstream.
	env, err := exampleenv.ConnectUnbound(environ, caracaltest.WithResource(caracaltest.Resource{
		Identifier:  *resource,
		Scopes:      []string{"tickets:read", "tickets:write", "tickets:delete"},
		UpstreamURL: self,
	}))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close(context.WithoutCancel(ctx))) }()
	c := env.Client

	mw, err := c.Middleware(caracal.VerifyTokens(*resource))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mw(tickets(say)), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(shutdownCtx))
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}()
	say("Resource server for %s listening on %s (connected to %s).", *resource, self, env.Where())

	if env.Stack == nil {
		<-ctx.Done()
		return nil
	}

	// A request that did not come through the Gateway has no valid token.
	resp, err := http.Get(self + "/tickets/1")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	say("Direct request without a token: %s %s", resp.Status, strings.TrimSpace(string(body)))

	// An agent calls it through the Gateway.
	root, err := c.Spawn(ctx, caracal.WithoutParent(), caracal.WithLabels("dispatcher"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, root.Close(context.WithoutCancel(ctx))) }()
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, *resource, caracal.Constraints{}, 5*time.Minute)))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, reader.Close(context.WithoutCancel(ctx))) }()
	say("Agent %s calls GET %s/tickets/9 with tickets:read through the Gateway.", reader.ID(), self)
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, self+"/tickets/9", nil)
	if err != nil {
		return err
	}
	resp, err = c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	say("  agent got: %s %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the governed call answered %s", resp.Status)
	}
	return nil
}
