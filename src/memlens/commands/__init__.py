"""One module per `memlens` sub-command; see memlens.cli."""
