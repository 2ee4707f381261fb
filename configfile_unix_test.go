//go:build unix

package caracal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A named pipe where a file is expected is refused without being opened:
// opening a pipe for reading waits for a writer, which would hang New.
func TestLoadConfigNamedPipeIsRefusedWithoutOpening(t *testing.T) {
	root := t.TempDir()
	fifo := filepath.Join(root, "pipe")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	for _, tc := range []struct {
		name string
		e    env
		opts []Option
		want string
	}{
		{"profile", baseEnv(), []Option{WithConfigFile(fifo)}, "caracal: WithConfigFile names " + fifo + ", which is not a regular file"},
		{"discovered profile", baseEnv().with("CARACAL_CONFIG_HOME", root), nil, "is not a regular file"},
		{"secret file", env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a", "CARACAL_APP_CLIENT_SECRET_FILE": fifo}, nil, "secret file " + fifo + " is not a regular file"},
		{"bindings file", baseEnv().with("CARACAL_RESOURCES_FILE", fifo), nil, "caracal: CARACAL_RESOURCES_FILE: " + fifo + " is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "discovered profile" {
				require.NoError(t, os.Rename(fifo, filepath.Join(root, "caracal.toml")))
				t.Cleanup(func() { require.NoError(t, os.Rename(filepath.Join(root, "caracal.toml"), fifo)) })
			}
			done := make(chan error, 1)
			go func() {
				_, err := LoadConfig(append([]Option{WithLookupEnv(tc.e.lookup)}, tc.opts...)...)
				done <- err
			}()
			select {
			case err := <-done:
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want)
			case <-time.After(10 * time.Second):
				// Release the blocked reader before failing.
				if w, err := os.OpenFile(filepath.Join(root, "pipe"), os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				t.Fatal("LoadConfig blocked opening a named pipe")
			}
		})
	}
}

// A default profile location under a path component that is a file (say
// $XDG_CONFIG_HOME/caracal is a file) holds no profile: discovery goes on.
func TestLoadConfigDiscoverySkipsAFileInThePath(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "xdg/caracal", "not a directory", 0o600)
	cfg, err := loadEnv(t, baseEnv().with("XDG_CONFIG_HOME", filepath.Join(root, "xdg")))
	require.NoError(t, err)
	assert.Empty(t, cfg.Profile)
}
