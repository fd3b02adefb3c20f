"""The operator console: server-rendered pages of the mesh, data products, deployments and policies, with JSON."""
