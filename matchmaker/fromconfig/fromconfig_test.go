package fromconfig

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
)

func parse(t *testing.T, ini string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(config.Source{Name: "test.conf", Data: []byte(ini)})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// Each transport URL gives a matchmaker that works against the real
// servers it names: what one process registers, another finds.
func TestTransportURLs(t *testing.T) {
	one := redistest.Start(t)
	several := []*redistest.Server{redistest.Start(t), redistest.Start(t), redistest.Start(t)}
	group := redistest.StartGroup(t, 1, 1, redistest.WithPassword("pw"))
	var hosts []string
	for _, s := range several {
		hosts = append(hosts, s.Addr())
	}
	tests := []struct {
		name, url string
		check     func(t *testing.T) // where the registration landed
	}{
		{"one", "zmq+redis://" + one.Addr() + "/", func(t *testing.T) { wantKey(t, one) }},
		{"several", "zmq+redis://" + strings.Join(hosts, ",") + "/", func(t *testing.T) {
			for _, s := range several {
				wantKey(t, s)
			}
		}},
		{"sentinel", fmt.Sprintf("zmq+sentinel://:pw@%s/%s", group.SentinelAddrs()[0], redistest.GroupName), func(t *testing.T) {
			wantKey(t, group.Master(t))
		}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, "[DEFAULT]\ntransport_url = "+tt.url+"\n")
			var mms []matchmaker.Matchmaker
			for range 2 {
				mm, err := New(ctx, cfg, log)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, ok := mm.(*mmredis.Matchmaker); !ok {
					t.Fatalf("New gave a %T", mm)
				}
				t.Cleanup(func() { mm.Close() })
				mms = append(mms, mm)
			}
			target := matchmaker.Target{Topic: "compute", Server: tt.name}
			if err := mms[0].Register(ctx, target, "127.0.0.1:1", matchmaker.Router, cfg.TargetExpire); err != nil {
				t.Fatal(err)
			}
			if got, err := mms[1].Hosts(ctx, target, matchmaker.Router); err != nil || !slices.Equal(got, []string{"127.0.0.1:1"}) {
				t.Fatalf("Hosts from another matchmaker = %q, %v", got, err)
			}
			tt.check(t)
		})
	}
}

func wantKey(t *testing.T, s *redistest.Server) {
	t.Helper()
	if n, err := s.Client().Exists(context.Background(), "ROUTER/compute").Result(); err != nil || n != 1 {
		t.Errorf("%s: ROUTER/compute exists %d, %v", s.Addr(), n, err)
	}
}

func TestDummy(t *testing.T) {
	mm, err := New(context.Background(), parse(t, "[oslo_messaging_zmq]\nrpc_zmq_matchmaker = dummy\n"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	if _, ok := mm.(*mmredis.Matchmaker); ok {
		t.Error("dummy gave a Redis matchmaker")
	}
}
