"""The runner agent: enrolls with Core, keeps a gRPC stream open, and runs signed jobs on its host."""
