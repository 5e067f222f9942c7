// Command go-bench is the Go Pitaya side of pitaya-rs's benchmark: the bench routes of
// bench/src/rs_server.rs on github.com/topfreegames/pitaya v1.1.8, with the same flags.
//
// v1.1.8 is the only Go Pitaya the module proxy used here serves; /v2 and /v3 are
// refused, so the comparison is with v1 (docs/benchmarks.md says what that means).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/viper"
	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/acceptor"
	"github.com/topfreegames/pitaya/component"
	"github.com/topfreegames/pitaya/config"
	"github.com/topfreegames/pitaya/groups"
)

// group is the group broadcast members join.
const group = "bench"

// Echo is the echo body.
type Echo struct {
	Data string `json:"data"`
}

// Stamp is a broadcast body: the sender's clock in nanoseconds and the broadcast's number.
type Stamp struct {
	Ts  uint64 `json:"ts"`
	Seq uint64 `json:"seq"`
}

// Join is a join body.
type Join struct {
	UID string `json:"uid"`
}

// Done is a plain answer.
type Done struct {
	Code int `json:"code"`
}

// Count answers the number of notifies seen.
type Count struct {
	Count uint64 `json:"count"`
}

// Bench holds the bench routes.
type Bench struct {
	component.Base
	notifies   uint64
	serverType string
}

// Echo answers its argument.
func (b *Bench) Echo(ctx context.Context, msg *Echo) (*Echo, error) {
	return msg, nil
}

// Notify counts a notify.
func (b *Bench) Notify(ctx context.Context, msg *Echo) {
	atomic.AddUint64(&b.notifies, 1)
}

// Count answers the notifies counted so far.
func (b *Bench) Count(ctx context.Context, _ []byte) (*Count, error) {
	return &Count{Count: atomic.LoadUint64(&b.notifies)}, nil
}

// Join binds the session to the uid and adds it to the group.
func (b *Bench) Join(ctx context.Context, msg *Join) (*Done, error) {
	s := pitaya.GetSessionFromCtx(ctx)
	if err := s.Bind(ctx, msg.UID); err != nil {
		return nil, pitaya.Error(err, "PIT-500")
	}
	if err := pitaya.GroupAddMember(ctx, group, msg.UID); err != nil {
		return nil, pitaya.Error(err, "PIT-500")
	}
	// A member leaves with its session, as the baseline's do, so a point's broadcasts
	// reach only its own clients and the next point's clients can join.
	uid := msg.UID
	if err := s.OnClose(func() {
		_ = pitaya.GroupRemoveMember(context.Background(), group, uid)
	}); err != nil {
		return nil, pitaya.Error(err, "PIT-500")
	}
	return &Done{}, nil
}

// Broadcast pushes its argument to every member.
func (b *Bench) Broadcast(ctx context.Context, msg *Stamp) (*Done, error) {
	if err := pitaya.GroupBroadcast(ctx, b.serverType, group, "onBcast", msg); err != nil {
		return nil, pitaya.Error(err, "PIT-500")
	}
	return &Done{}, nil
}

func main() {
	role := flag.String("role", "standalone", "standalone, frontend or backend")
	tcp := flag.String("tcp", "127.0.0.1:0", "TCP listen address")
	ws := flag.String("ws", "127.0.0.1:0", "WebSocket listen address")
	heartbeat := flag.Int("heartbeat", 30, "heartbeat interval, seconds")
	nats := flag.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoint")
	prefix := flag.String("etcd-prefix", "pitaya/", "service discovery key prefix")
	flag.Parse()

	// Pitaya v1 logs at debug level by default; the Rust servers log nothing per message.
	log := logrus.New()
	log.Level = logrus.WarnLevel
	pitaya.SetLogger(log.WithField("source", "pitaya"))

	cfg := viper.New()
	cfg.Set("pitaya.heartbeat.interval", fmt.Sprintf("%ds", *heartbeat))
	cfg.Set("pitaya.cluster.rpc.client.nats.connect", *nats)
	cfg.Set("pitaya.cluster.rpc.server.nats.connect", *nats)
	cfg.Set("pitaya.cluster.sd.etcd.endpoints", *etcd)
	cfg.Set("pitaya.cluster.sd.etcd.prefix", *prefix)
	// A frontend started next to its backend can miss it until the next full sync
	// (default 120 s); frequent syncs cost nothing measurable here.
	cfg.Set("pitaya.cluster.sd.etcd.syncservers.interval", "2s")
	// Off in every server of the benchmark: v1 deflates each message once per recipient.
	cfg.Set("pitaya.handler.messages.compression", false)

	serverType, frontend, mode := "bench", true, pitaya.Standalone
	switch *role {
	case "standalone":
	case "frontend":
		serverType, mode = "connector", pitaya.Cluster
	case "backend":
		serverType, frontend, mode = "backend", false, pitaya.Cluster
	default:
		fmt.Fprintf(os.Stderr, "go-bench: unknown role %q\n", *role)
		os.Exit(2)
	}
	if *role != "frontend" {
		pitaya.Register(&Bench{serverType: serverType},
			component.WithName("bench"),
			component.WithNameFunc(strings.ToLower),
		)
	}
	if frontend {
		pitaya.AddAcceptor(acceptor.NewTCPAcceptor(*tcp))
		pitaya.AddAcceptor(acceptor.NewWSAcceptor(*ws))
	}
	pitaya.SetHeartbeatTime(time.Duration(*heartbeat) * time.Second)
	pitaya.Configure(frontend, serverType, mode, map[string]string{}, cfg)
	pitaya.InitGroups(groups.NewMemoryGroupService(config.NewConfig(cfg)))
	if err := pitaya.GroupCreate(context.Background(), group); err != nil {
		fmt.Fprintf(os.Stderr, "go-bench: %v\n", err)
		os.Exit(1)
	}
	defer pitaya.Shutdown()
	pitaya.Start()
}
