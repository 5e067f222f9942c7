// Command go-cluster runs one Go Pitaya v1 server of the clustered chat, so that it can
// join a cluster of pitaya-rs `cluster-chat` servers: `go-cluster room` is a backend
// with the same routes, remote and pushes as the Rust room; `go-cluster connector` is a
// TCP frontend that forwards `room.*` to any room server.
//
// Configuration is Pitaya's: every `pitaya.*` key can be set from the environment
// (`PITAYA_CLUSTER_SD_ETCD_ENDPOINTS`, `PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT`, ...).
// `PITAYA_CLUSTER_RPC_TRANSPORT=grpc` switches to gRPC with the etcd binding storage,
// as it does for the Rust servers.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/viper"
	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/acceptor"
	"github.com/topfreegames/pitaya/cluster"
	"github.com/topfreegames/pitaya/constants"
	"github.com/topfreegames/pitaya/modules"
	"github.com/topfreegames/pitaya/serialize/json"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "connector" && os.Args[1] != "room") {
		fmt.Fprintln(os.Stderr, "usage: go-cluster connector [--tcp ADDR] | room")
		os.Exit(2)
	}
	role := os.Args[1]
	flags := flag.NewFlagSet(role, flag.ExitOnError)
	tcpAddr := flags.String("tcp", "127.0.0.1:0", "TCP listen address (connector)")
	flags.Parse(os.Args[2:])

	if err := run(role, *tcpAddr); err != nil {
		fmt.Fprintf(os.Stderr, "go-cluster: %s\n", err)
		os.Exit(1)
	}
}

func run(role, tcpAddr string) error {
	// v1 logs at debug level by default: every etcd sync and message.
	plog := logrus.New()
	plog.Level = logrus.InfoLevel
	if os.Getenv("GO_CLUSTER_DEBUG") != "" {
		plog.Level = logrus.DebugLevel
	}
	pitaya.SetLogger(plog.WithField("source", "pitaya"))

	// The Rust servers answer with JSON; the frontend passes bodies through unchanged,
	// so every server of the cluster must use the same client serializer.
	pitaya.SetSerializer(json.NewSerializer())
	frontend := role == "connector"
	useGRPC := os.Getenv("PITAYA_CLUSTER_RPC_TRANSPORT") == "grpc"

	overrides := viper.New()
	meta := map[string]string{}
	if useGRPC {
		// v1 publishes the gRPC address through server metadata, written before the
		// listener exists, so the port is chosen here rather than with port 0.
		port, err := freePort()
		if err != nil {
			return err
		}
		overrides.Set("pitaya.cluster.rpc.server.grpc.port", port)
		meta[constants.GRPCHostKey] = "127.0.0.1"
		meta[constants.GRPCPortKey] = strconv.Itoa(port)
	}

	var tcp *acceptor.TCPAcceptor
	if frontend {
		tcp = acceptor.NewTCPAcceptor(tcpAddr)
		pitaya.AddAcceptor(tcp)
		registerConnector()
	} else {
		registerRoom()
	}
	pitaya.Configure(frontend, role, pitaya.Cluster, meta, overrides)

	sd, err := cluster.NewEtcdServiceDiscovery(
		pitaya.GetConfig(), pitaya.GetServer(), pitaya.GetDieChan())
	if err != nil {
		return fmt.Errorf("service discovery: %w", err)
	}
	sd.AddListener(discoveryLog{})
	pitaya.SetServiceDiscoveryClient(sd)
	if useGRPC {
		if err := setupGRPC(); err != nil {
			return err
		}
	}
	if !frontend {
		if err := setupGroups(); err != nil {
			return err
		}
	}
	if err := pitaya.RegisterModule(&readiness{tcp: tcp}, "readiness"); err != nil {
		return err
	}
	pitaya.Start()
	return nil
}

// setupGRPC installs the gRPC RPC server and client, with the etcd binding storage
// that gRPC needs to find the frontend of a uid.
func setupGRPC() error {
	conf, server := pitaya.GetConfig(), pitaya.GetServer()
	gs, err := cluster.NewGRPCServer(conf, server, pitaya.GetMetricsReporters())
	if err != nil {
		return fmt.Errorf("grpc server: %w", err)
	}
	bs := modules.NewETCDBindingStorage(server, conf)
	if err := pitaya.RegisterModule(bs, "bindingsStorage"); err != nil {
		return err
	}
	gc, err := cluster.NewGRPCClient(conf, server, pitaya.GetMetricsReporters(), bs,
		cluster.NewConfigInfoRetriever(conf))
	if err != nil {
		return fmt.Errorf("grpc client: %w", err)
	}
	pitaya.SetRPCServer(gs)
	pitaya.SetRPCClient(gc)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readiness prints the lines the tests wait for once the server is registered.
type readiness struct {
	modules.Base
	tcp *acceptor.TCPAcceptor
}

// AfterInit runs after every module's Init, service discovery's (the etcd record)
// included.
func (r *readiness) AfterInit() {
	server := pitaya.GetServer()
	if r.tcp != nil {
		// The acceptor binds in its own goroutine; wait for its address.
		for r.tcp.GetAddr() == "" {
			sleepBriefly()
		}
		fmt.Printf("go-cluster: connector listening tcp=%s\n", r.tcp.GetAddr())
	}
	fmt.Printf("go-cluster: joined the cluster server_id=%s server_type=%s\n",
		server.ID, server.Type)
}

// discoveryLog prints every server that service discovery adds or removes.
type discoveryLog struct{}

func (discoveryLog) AddServer(s *cluster.Server) {
	fmt.Printf("go-cluster: discovered server_id=%s server_type=%s frontend=%t metadata=%s\n",
		s.ID, s.Type, s.Frontend, formatMeta(s.Metadata))
}

func (discoveryLog) RemoveServer(s *cluster.Server) {
	fmt.Printf("go-cluster: removed server_id=%s server_type=%s\n", s.ID, s.Type)
}

func formatMeta(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+":"+v)
	}
	return strings.Join(parts, ",")
}
