// cnidrive: a minimal CNI runtime for pyvfmac's tests, built on libcni (Debian's
// golang-github-appc-cni-dev) so that vfmac-cni is driven exactly as a container runtime
// drives a plugin: network lists, capability args, CNI_ARGS, the result cache, prevResult.
//
// Usage: cnidrive add|check|del CONFLIST CONTAINERID NETNS IFNAME [CAPARGS-JSON [K=V;K=V]]
// Env: CNI_PATH (plugin dirs, ':'-separated), CNIDRIVE_CACHE (libcni's cache dir).
// add prints the result JSON; a failure prints the plugin's error JSON ({"code","msg",...})
// when there is one, and exits 1; a usage error exits 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func fail(err error) {
	var e *types.Error
	if errors.As(err, &e) { // libcni wraps the plugin's error: "plugin X failed (add): %w"
		out, _ := json.Marshal(e)
		fmt.Println(string(out))
	} else {
		out, _ := json.Marshal(map[string]interface{}{"code": -1, "msg": err.Error()})
		fmt.Println(string(out))
	}
	os.Exit(1)
}

func main() {
	if len(os.Args) < 6 {
		fmt.Fprintln(os.Stderr, "usage: cnidrive add|check|del CONFLIST CONTAINERID NETNS IFNAME [CAPARGS [ARGS]]")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(os.Args[2])
	if err != nil {
		fail(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: os.Args[3], NetNS: os.Args[4], IfName: os.Args[5]}
	if len(os.Args) > 6 && os.Args[6] != "" {
		if err := json.Unmarshal([]byte(os.Args[6]), &rt.CapabilityArgs); err != nil {
			fmt.Fprintln(os.Stderr, "bad CAPARGS:", err)
			os.Exit(2)
		}
	}
	if len(os.Args) > 7 && os.Args[7] != "" {
		for _, kv := range strings.Split(os.Args[7], ";") {
			parts := strings.SplitN(kv, "=", 2)
			if len(parts) == 2 {
				rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
			}
		}
	}
	cache := os.Getenv("CNIDRIVE_CACHE")
	if cache == "" {
		cache = filepath.Join(os.TempDir(), "cnidrive-cache")
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cache, nil)
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown action", os.Args[1])
		os.Exit(2)
	}
}
