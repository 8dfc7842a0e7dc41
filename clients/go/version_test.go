package keyport_test

import (
	"os"
	"regexp"
	"testing"

	keyport "github.com/keyport/keyport/clients/go"
)

// The SDK's version is the Rust workspace's, written once in Version.
func TestVersionIsTheWorkspaceVersion(t *testing.T) {
	manifest, err := os.ReadFile("../../Cargo.toml")
	if err != nil {
		t.Fatalf("reading the workspace manifest: %v", err)
	}
	m := regexp.MustCompile(`(?s)\[workspace\.package\].*?\nversion = "([^"]+)"`).FindSubmatch(manifest)
	if m == nil {
		t.Fatal("no [workspace.package] version in Cargo.toml")
	}
	if keyport.Version != string(m[1]) {
		t.Errorf("keyport.Version = %q, want the workspace's %q", keyport.Version, m[1])
	}
}

// The README's links work outside the repository (on pkg.go.dev and in the
// module's zip): absolute, never ../ into the rest of the repository.
func TestREADMELinksAreAbsolute(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range regexp.MustCompile(`\]\(([^)#][^)]*)\)`).FindAllStringSubmatch(string(readme), -1) {
		if !regexp.MustCompile(`^https://`).MatchString(link[1]) {
			t.Errorf("README.md links to %q: use https://github.com/keyport/keyport/blob/main/...", link[1])
		}
	}
	if _, err := os.Stat("LICENSE"); err != nil {
		t.Errorf("the module has no LICENSE of its own (pkg.go.dev shows none without it): %v", err)
	}
}
