"""The annual Standard Electronic Format (SEF) report of a Party's registry (protocol.md
6): ``tables`` computes it from stored transactions and notices, ``render`` gives it as
XML (schema in ``schema/``), CSV and HTML and reads a submitted one back, ``crosscheck``
lists the cells where two reports differ (docs/adr/0031)."""
