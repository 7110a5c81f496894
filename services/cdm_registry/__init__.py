"""The CDM registry: the only issuer of CERs, tCERs and lCERs."""
