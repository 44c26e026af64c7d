"""memlens in other tools: the pytest plugin (pytest_plugin) and the
IPython/Jupyter magics (memlens.magics, loaded by `%load_ext memlens`)."""
