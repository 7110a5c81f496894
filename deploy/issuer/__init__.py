"""A small OAuth2 issuer for the local stack, the demo and the tests (``python -m
deploy.issuer``); see ``deploy.issuer.app``."""
