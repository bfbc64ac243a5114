package config

import (
	"fmt"
	"time"
)

// MixedFleetOption is an option whose default here (the deployment
// guide's) differs from the last Python driver's, so that a file silent on
// it means one thing to Go services and another to Python ones
// (docs/mixing-with-python.md).
type MixedFleetOption struct {
	Name   string // in [oslo_messaging_zmq] (or [DEFAULT])
	Python string // the Python driver's default
	// ours describes what this driver uses when the option is not set.
	ours func(c *Config) string
}

// MixedFleetOptions lists the options a deployment mixing Go and Python
// services must set explicitly. Parse warns once about each one no file
// (nor the transport URL) sets.
var MixedFleetOptions = []MixedFleetOption{
	{"use_pub_sub", "false", func(c *Config) string { return fmt.Sprint(c.UsePubSub, " here") }},
	{"zmq_target_expire", "300", func(c *Config) string { return seconds(c.TargetExpire) + " here" }},
	{"zmq_target_update", "180", func(c *Config) string {
		return seconds(c.TargetUpdate) + " here (half of zmq_target_expire)"
	}},
	{"rpc_zmq_matchmaker", "redis", func(c *Config) string { return c.Matchmaker + " here" }},
}

func seconds(d time.Duration) string { return fmt.Sprint(int64(d / time.Second)) }

func (p *parser) mixedFleetWarnings() {
	for _, o := range MixedFleetOptions {
		if _, ok := p.origins[sectionZMQ+"."+o.Name]; ok {
			continue
		}
		p.warn("%s is not set: %s, %s in the Python driver; set it in every file of a deployment "+
			"mixing Go and Python services (docs/mixing-with-python.md)", o.Name, o.ours(p.c), o.Python)
	}
}
