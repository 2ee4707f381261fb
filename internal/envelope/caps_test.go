package envelope

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func members(prefix string, n int, value string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{prefix + strconv.Itoa(i), value}
	}
	return ms
}

// A receiver ignores a baggage over 64 members or 8192 bytes as a whole,
// Caracal members included (§7.3). Re-emitting an inbound baggage that was
// within the caps can exceed them: the Caracal members are added to it, and
// a value received unencoded ("+", non-ASCII) grows threefold when encoded.
// Inject drops non-Caracal members instead, so that the receiver keeps the
// identity and the members that fit.
func TestInjectKeepsBaggageWithinCaps(t *testing.T) {
	ids := Envelope{SessionID: "s", DelegationID: "d", ParentDelegationID: "p", SubjectRecordID: "r", Hop: 2}
	// The value length that brings the encoded baggage to MaxBaggageBytes
	// exactly, next to the Caracal members, as ",big=" + value.
	fit := MaxBaggageBytes - len(MergeBaggage(ids, nil)) - len(",big=")
	tests := []struct {
		name     string
		baggage  []Member
		existing []string
		kept     []string // non-Caracal keys that must survive
		dropped  []string // and those that must not
	}{
		{"64 inherited members", members("k", 64, "v"), nil, []string{"k0", "k58"}, []string{"k59", "k63"}},
		{"values that grow when encoded", []Member{{"a", "1"}, {"big", strings.Repeat("+", 4000)}, {"z", "1"}}, nil,
			[]string{"a", "z"}, []string{"big"}},
		{"many values that grow", members("k", 60, strings.Repeat("ü", 120)), nil, []string{"k0", "k10"}, []string{"k11", "k59"}},
		{"a member that fills the cap to the byte", []Member{{"big", strings.Repeat("a", fit)}, {"z", "1"}}, nil,
			[]string{"big"}, []string{"z"}},
		{"a member one byte over the cap", []Member{{"big", strings.Repeat("a", fit+1)}, {"z", "1"}}, nil,
			[]string{"z"}, []string{"big"}},
		{"the request's members come first", members("k", 64, "v"), []string{"mine=1"}, []string{"mine", "k0", "k57"}, []string{"k58"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ids
			in.Baggage = tt.baggage
			for _, merge := range []bool{false, true} {
				h := http.Header{}
				if merge && tt.existing != nil {
					h["Baggage"] = tt.existing
				} else if tt.existing != nil {
					continue
				}
				Inject(h, in, merge)
				require.Len(t, h["Baggage"], 1)
				assert.LessOrEqual(t, len(h["Baggage"][0]), MaxBaggageBytes)
				assert.Equal(t, h["Baggage"][0], MergeBaggage(in, tt.existing))

				out, p := Extract(h)
				require.Zero(t, p, p.String())
				assert.Equal(t, ids.SessionID+ids.DelegationID+ids.ParentDelegationID+ids.SubjectRecordID,
					out.SessionID+out.DelegationID+out.ParentDelegationID+out.SubjectRecordID)
				assert.Equal(t, ids.Hop, out.Hop)
				got := map[string]string{}
				for _, m := range out.Baggage {
					got[m.Key] = m.Value
				}
				for _, k := range tt.kept {
					assert.Contains(t, got, k)
				}
				for _, k := range tt.dropped {
					assert.NotContains(t, got, k)
				}
				assert.Len(t, tt.baggage, len(in.Baggage), "the envelope's members are not modified")
			}
		})
	}
}
