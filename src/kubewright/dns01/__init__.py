"""cert-manager DNS01 solver publishing challenges to a Valkey stream."""
