"""Stores: DynamoDB aggregates and device state, the S3 raw archive, dead letters, manifests."""
