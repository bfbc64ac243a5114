package config

import (
	"fmt"
	"time"
)

// mixedFleetOption is an option whose default here (the deployment
// guide's) differs from the last Python driver's, so that a file silent on
// it means one thing to Go services and another to Python ones
// (docs/mixing-with-python.md).
type mixedFleetOption struct {
	name   string // in [oslo_messaging_zmq] (or [DEFAULT])
	python string // the Python driver's default
	// ours describes what this driver uses when the option is not set.
	ours func(c *Config) string
}

// mixedFleetOptions lists the options a deployment mixing Go and Python
// services must set explicitly. Parse warns once about each one no file
// (nor the transport URL) sets.
var mixedFleetOptions = []mixedFleetOption{
	{"use_pub_sub", "false", func(c *Config) string { return fmt.Sprint(c.UsePubSub, " here") }},
	{"zmq_target_expire", "300", func(c *Config) string { return seconds(c.TargetExpire) + " here" }},
	{"zmq_target_update", "180", func(c *Config) string {
		return seconds(c.TargetUpdate) + " here (half of zmq_target_expire)"
	}},
	{"rpc_zmq_matchmaker", "redis", func(c *Config) string { return c.Matchmaker + " here" }},
}

func seconds(d time.Duration) string { return fmt.Sprint(int64(d / time.Second)) }

func (p *parser) mixedFleetWarnings() {
	for _, o := range mixedFleetOptions {
		if _, ok := p.origins[sectionZMQ+"."+o.name]; ok {
			continue
		}
		p.warn("%s is not set: %s, %s in the Python driver; set it in every file of a deployment "+
			"mixing Go and Python services (docs/mixing-with-python.md)", o.name, o.ours(p.c), o.python)
	}
}
