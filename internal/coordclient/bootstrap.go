package coordclient

import "fmt"

// bootstrapRefused says what a 401 invalid_token means when the lifecycle
// token is the configured bootstrap token, which no refresh replaces: the
// token itself is unusable (PROTOCOL §2.7, §4.1), and only the
// configuration can fix it. The token is not printed.
func bootstrapRefused(res outcome) outcome {
	if res.api != nil && res.api.Code == "invalid_token" {
		res.err = fmt.Errorf("caracal: the Coordinator refused the configured bootstrap token (CARACAL_BOOTSTRAP_TOKEN or Config.BootstrapToken): it must be a live use=session token of this zone, issued by its STS, with the agent:lifecycle scope; configure a fresh one, or a client secret instead: %w", res.err)
	}
	return res
}
