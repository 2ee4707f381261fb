package coordclient

import "fmt"

// bootstrapRefused says what a refusal of the lifecycle token means when
// that token is the configured bootstrap token, which no refresh replaces:
// only the configuration can fix it (PROTOCOL §2.7, §4.1). The token is not
// printed.
func bootstrapRefused(res outcome) outcome {
	if res.api == nil {
		return res
	}
	const which = "the configured bootstrap token (CARACAL_BOOTSTRAP_TOKEN or Config.BootstrapToken)"
	switch res.api.Code {
	case "invalid_token":
		res.err = fmt.Errorf("caracal: the Coordinator refused %s: it must be a live use=session token of this zone, issued by its STS, with the agent:lifecycle scope; configure a fresh one, or a client secret instead: %w", which, res.err)
	case "identity_revoked":
		res.err = fmt.Errorf("caracal: the Coordinator no longer accepts %s: the authority record it was issued for has ended, or its application is archived or expired; configure a fresh one, or a client secret instead: %w", which, res.err)
	case "missing_scope":
		res.err = fmt.Errorf("caracal: %s lacks the agent:lifecycle scope the Coordinator requires; configure one issued with it, or a client secret instead: %w", which, res.err)
	}
	return res
}
