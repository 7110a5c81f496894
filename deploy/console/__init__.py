"""The web console of a stack (docs/adr/0041): server-rendered pages over the services'
operator APIs, acting with the signed-in person's or client's bearer token."""
