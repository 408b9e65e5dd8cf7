"""Infrahub backup and restore (Neo4j + PostgreSQL to S3 or a PVC)."""
