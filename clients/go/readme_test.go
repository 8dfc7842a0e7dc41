package keyport_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlocks returns the bodies of the README's fenced blocks of lang.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```"+regexp.QuoteMeta(lang)+"\n(.*?)```\n").FindAllStringSubmatch(string(readme), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// The README's Go code is compiled: every ```go block is the body of an
// Example in example_test.go.
func TestREADMEGoBlocksAreExamples(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, "go")
	if len(blocks) < 2 {
		t.Fatalf("found %d ```go blocks in README.md, want the usage and TLS examples", len(blocks))
	}
	for _, block := range blocks {
		indented := "\t" + strings.ReplaceAll(strings.TrimSuffix(block, "\n"), "\n", "\n\t") + "\n}"
		indented = strings.ReplaceAll(indented, "\n\t\n", "\n\n") // blank lines carry no tab
		if !strings.Contains(string(src), indented) {
			t.Errorf("README.md block is not the body of an Example in example_test.go:\n%s", block)
		}
	}
}

// The README's install instructions work from a fresh module: its go.mod
// lines (with the checkout's path), `go mod tidy`, then a program that
// imports both packages builds, vets and runs against the live server.
func TestREADMEInstallWorksInAFreshModule(t *testing.T) {
	addr := liveServer(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	sdk, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, "go.mod")
	if len(blocks) != 1 {
		t.Fatalf("found %d ```go.mod blocks in README.md, want 1", len(blocks))
	}
	const placeholder = "/path/to/keyport/clients/go"
	if !strings.Contains(blocks[0], placeholder) || !strings.Contains(blocks[0], "\nreplace ") {
		t.Fatalf("the README's go.mod has no replace to %s:\n%s", placeholder, blocks[0])
	}

	app := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", strings.ReplaceAll(blocks[0], placeholder, sdk))
	write("main.go", `package main

import (
	"context"
	"fmt"
	"log"
	"os"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

func main() {
	client, err := keyport.Dial(os.Args[1], keyport.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	_, err = client.Sessions.GetSession(context.Background(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
	fmt.Println(keyport.ErrorReason(err))
}
`)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(goTool, "mod", "tidy")
	run(goTool, "build", "-o", "app", ".")
	run(goTool, "vet", "./...")
	if got := run(filepath.Join(app, "app"), addr); got != "UNAUTHENTICATED\n" {
		t.Errorf("the app printed %q, want UNAUTHENTICATED", got)
	}
}
