// The official MCP registry's own validation of a server.json, without the
// registry's database. scripts/mcp-registry.sh builds this file inside a
// copy of github.com/modelcontextprotocol/registry (the version pinned
// there, from the Go module cache) as cmd/l402-validate, because the code it
// calls is internal to that module; this repository holds only this file.
//
//	l402-validate serve
//	    Answers POST /v0/validate on 127.0.0.1 (a free port, printed as the
//	    first line of stdout: http://127.0.0.1:PORT) as the registry's
//	    handler does: validators.ValidateServerJSON(body, ValidationAll).
//	    `mcp-publisher validate` is pointed at it.
//	l402-validate publish FILE
//	    The checks the registry's publish handler makes before it stores an
//	    entry, offline: ValidateServerJSON with the publish options (a
//	    non-current schema is an error), ValidatePublishRequest, and each
//	    package's ValidatePackage with a context cancelled before any
//	    request is sent, so that for an MCPB package every check runs
//	    (fileSha256 present, identifier an https release asset URL on an
//	    allowlisted host, containing "mcp", no registryBaseUrl) except the
//	    last, the HEAD request to the release asset, which needs the release
//	    to exist.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/registry/internal/config"
	"github.com/modelcontextprotocol/registry/internal/validators"
	apiv0 "github.com/modelcontextprotocol/registry/pkg/api/v0"
)

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "serve" {
		serve()
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "publish" {
		os.Exit(publish(os.Args[2]))
	}
	fmt.Fprintln(os.Stderr, "usage: l402-validate serve | l402-validate publish FILE")
	os.Exit(2)
}

func serve() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "l402-validate:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v0/validate", func(w http.ResponseWriter, r *http.Request) {
		var body apiv0.ServerJSON
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		result := validators.ValidateServerJSON(&body, validators.ValidationAll)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(result)
	})
	fmt.Printf("http://%s\n", listener.Addr())
	if err := http.Serve(listener, mux); err != nil {
		fmt.Fprintln(os.Stderr, "l402-validate:", err)
		os.Exit(1)
	}
}

func publish(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "l402-validate:", err)
		return 1
	}
	var server apiv0.ServerJSON
	if err := json.Unmarshal(data, &server); err != nil {
		fmt.Printf("FAIL  %s is not a server.json: %v\n", path, err)
		return 1
	}
	failed := 0
	result := validators.ValidateServerJSON(&server, validators.ValidationSchemaVersionAndSemantic)
	for _, issue := range result.Issues {
		fmt.Printf("%s  %s: %s (%s)\n", issue.Severity, issue.Path, issue.Message, issue.Reference)
	}
	// A warning (a schema that is not the current one) fails too: publish
	// what the registry takes without a word.
	if result.Valid && len(result.Issues) == 0 {
		fmt.Println("ok    publish: ValidateServerJSON (schema version and semantic rules)")
	} else {
		fmt.Println("FAIL  publish: ValidateServerJSON (schema version and semantic rules)")
		failed++
	}
	if err := validators.ValidatePublishRequest(context.Background(), server, &config.Config{EnableRegistryValidation: false}); err != nil {
		fmt.Printf("FAIL  publish: ValidatePublishRequest: %v\n", err)
		failed++
	} else {
		fmt.Println("ok    publish: ValidatePublishRequest (publisher extensions)")
	}
	offline, cancel := context.WithCancel(context.Background())
	cancel()
	for i, pkg := range server.Packages {
		err := validators.ValidatePackage(offline, pkg, server.Name)
		switch {
		case err == nil:
			fmt.Printf("ok    publish: package %d (%s) ValidatePackage\n", i, pkg.RegistryType)
		case errors.Is(err, context.Canceled):
			fmt.Printf("ok    publish: package %d (%s) ValidatePackage, every check before the download check (not made: offline)\n", i, pkg.RegistryType)
		default:
			fmt.Printf("FAIL  publish: package %d (%s) ValidatePackage: %v\n", i, pkg.RegistryType, err)
			failed++
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}
