package caracaltest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// A grant for a resource the zone does not have (a typo in its identifier,
// or a resource WithoutDefaults removed) is refused by New, naming the
// identifier, instead of being kept and never matched: the resource meant
// kept its earlier grant, or none, and mints failed as plain policy denials.
func TestNewRefusesGrantForUnknownResource(t *testing.T) {
	for name, c := range map[string]struct {
		opts []caracaltest.Option
		want string
	}{
		"grant for an unknown resource": {
			[]caracaltest.Option{caracaltest.WithGrant("resource://ticket", "app-test",
				map[string][]string{"reader": {"tickets:read"}})},
			"resource://ticket",
		},
		"grant after WithoutDefaults without the resource": {
			[]caracaltest.Option{caracaltest.WithoutDefaults(),
				caracaltest.WithApplication(caracaltest.App{ID: "app-test"}),
				caracaltest.WithGrant("resource://tickets", "app-test",
					map[string][]string{"reader": {"tickets:read"}})},
			"resource://tickets",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := caracaltest.New(c.opts...)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// A grant may come before the resource it names.
func TestNewAcceptsGrantBeforeResource(t *testing.T) {
	s, err := caracaltest.New(
		caracaltest.WithGrant("resource://docs", "app-test", map[string][]string{"reader": {"docs:read"}}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://docs", Scopes: []string{"docs:read"}}),
	)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
