"""Real HTTP servers on 127.0.0.1 for tests: a plain Range server, a Hub-compatible server, git repo helpers.

http_base.py     the shared machinery: Faults, Stats, ranged file bodies, a loopback threaded server
range_server.py  RangeServer (plain files with Range), also runnable standalone for benchmarks
hub_server.py    HubServer: huggingface_hub's endpoints over real git repos, large files via a CDN port
gitrepo.py       make real git repositories with the git CLI (commits, branches, tags) and read them back
Pytest fixtures wrapping these live in tests/fixtures/servers.py.
"""
