"""The reference Dynamo store: one OS process per node."""
