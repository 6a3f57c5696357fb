"""The composed config: its resolvers and its validation before any data is loaded or any run is created."""
