"""Benchmarks of a Portmesh node against docker-registry on loopback (see README.md)."""
