package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResourceServerVerifiesTheGatewayToken(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, nil, &out))

	got := out.String()
	require.Regexp(t, `Direct request without a token: 401 Unauthorized \{"error":"missing_token"`, got)
	agent := regexp.MustCompile(`Agent ([0-9a-f-]{36}) calls GET`).FindStringSubmatch(got)
	require.Len(t, agent, 2)
	require.Regexp(t, `resource server: GET /tickets/9 by session `+agent[1]+` of application app-test, delegation [0-9a-f-]{36}, hop 1`, got)
	require.Regexp(t, `agent got: 200 OK \{.*"read_by":"`+agent[1]+`"`, got)
}
