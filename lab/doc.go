// Package lab holds the tests of the multi-node lab: the services of the
// repository's docker-compose.yml (Redis, three router proxies, a controller
// and two computes), each in its own container with its own address on a
// private network, driven from a client container and broken on purpose
// with testcontainers-go. Without a Docker daemon those tests skip, unless
// FABRIC_REQUIRE_DOCKER=1 makes that a failure. How to run them, and the
// lab itself: docs/lab.md.
package lab
