"""Protocol rules that the ITL and every registry apply alike, as data plus pure functions.

- ``accounts``: which account types may send and receive, per transaction type and
  supplementary type (protocol.md 2.6, 2.7; V UK-TYPES).
- ``periods``: the quantitative rules of the commitment periods: reserve, share of
  proceeds, previous period surplus reserve, Art. 3.7ter, carry-over, tCER/lCER expiry
  and replacement, RMU and A/R CDM limits (protocol.md 4; decisions 1/CMP.8, 5/CMP.1,
  13/CMP.1, 16/CMP.1, 2/CMP.7).
- ``parties``: each Party's commitments and eligibility to use the mechanisms
  (Articles 6, 12, 17), from reference data (protocol.md 4.4).

Nothing here does I/O or reads a clock; services import it, it imports nothing of theirs.
"""
