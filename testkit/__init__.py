"""What the tests and the benchmarks share: loopback servers that speak the real wire protocols
(Anthropic's Messages API, GitHub's REST API, a JSON API), scripted conversations, and helpers for
real git and the installed Temporal binaries. Development only: not in the installed package."""
