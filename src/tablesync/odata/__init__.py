"""The OData query language shared by the client and the server: parse, build, print."""
