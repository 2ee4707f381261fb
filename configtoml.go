package caracal

// This file decodes a TOML profile into profileData.

import (
	"fmt"
	"maps"
	"slices"

	"github.com/BurntSushi/toml"
)

// decodeProfile decodes a profile into d and returns the keys it does not
// know, in the order they appear. Keys match exactly, as TOML keys are
// case-sensitive and as the other readers of a shared profile match them:
// the TOML package's struct decoding also takes a key that differs from a
// field's only in case (ZONE_ID for zone_id), and with both spellings
// present keeps either value, by map order.
func decodeProfile(data string, d *profileData) (unknown []string, err error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(data, &top)
	if err != nil {
		return nil, err
	}
	fields := map[string]any{
		"zone_id":                &d.ZoneID,
		"application_id":         &d.ApplicationID,
		"app_client_secret":      &d.AppClientSecret,
		"app_client_secret_file": &d.AppClientSecretFile,
		"sts_url":                &d.STSURL,
		"coordinator_url":        &d.CoordinatorURL,
		"gateway_url":            &d.GatewayURL,
		"default_ttl_seconds":    &d.DefaultTTLSeconds,
	}
	lists := map[string]*[]profileCredential{
		"credentials":          &d.Credentials,
		"optional_credentials": &d.OptionalCredentials,
	}
	seen := map[string]bool{}
	report := func(k string) {
		if !seen[k] {
			seen[k] = true
			unknown = append(unknown, k)
		}
	}
	done := map[string]bool{}
	// Document order: of several bad values, the first is reported.
	for _, k := range md.Keys() {
		name := k[0]
		dst, isField := fields[name]
		list, isList := lists[name]
		switch {
		case len(k) == 1 && isField:
			if !done[name] {
				done[name] = true
				if err := md.PrimitiveDecode(top[name], dst); err != nil {
					return nil, err
				}
			}
		case len(k) == 1 && isList:
			if !done[name] {
				done[name] = true
				if err := decodeCredentials(&md, name, top[name], list, report); err != nil {
					return nil, err
				}
			}
		case len(k) == 2 && isList:
			// An entry's key: decodeCredentials reports the unknown ones.
		default:
			report(k.String())
		}
	}
	return unknown, nil
}

// decodeCredentials decodes a credentials array (name) into list, reporting
// the entries' unknown keys as name.key.
func decodeCredentials(md *toml.MetaData, name string, prim toml.Primitive, list *[]profileCredential, report func(string)) error {
	var elems []toml.Primitive
	if err := md.PrimitiveDecode(prim, &elems); err != nil {
		return err
	}
	for _, el := range elems {
		// Decoding a value that is not a table into a map gives an empty
		// map, without an error: the struct decoding reports it, with its
		// line.
		var v any
		if err := md.PrimitiveDecode(el, &v); err != nil {
			return err
		}
		if _, ok := v.(map[string]any); !ok {
			if err := md.PrimitiveDecode(el, new(profileCredential)); err != nil {
				return err
			}
			return fmt.Errorf("toml: (last key %q): want a table", name)
		}
		var e map[string]toml.Primitive
		if err := md.PrimitiveDecode(el, &e); err != nil {
			return err
		}
		var c profileCredential
		for _, k := range slices.Sorted(maps.Keys(e)) {
			var err error
			switch k {
			case "resource":
				err = md.PrimitiveDecode(e[k], &c.Resource)
			case "upstream_prefix":
				err = md.PrimitiveDecode(e[k], &c.UpstreamPrefix)
			default:
				report(name + "." + k)
			}
			if err != nil {
				return err
			}
		}
		*list = append(*list, c)
	}
	return nil
}
