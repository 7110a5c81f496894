Feature: 15 Replacement (H-360 to H-379)
  tCERs used towards a commitment are replaced before they expire, on the ITL's
  impending expiry notice. (Runs last: it moves the clock to December 2020.)

  @H-363
  Scenario: A replacement of more tCERs than the notice asks for is terminated with 4014
    Given Party KZ has base-year emissions of 1 000 000 for period 1
    And KZ holds at least 20 000 AAU of period 1 in its Party holding account
    And a person holding account "Plot" in KZ
    And the CDM registry has issued 50 TCER of period 1 for project "CDM-AR-R3" to "Plot"
    And the ITL has issued notice "N3" to KZ listing the TCER blocks of "Plot":
      | notice type  | 3  |
      | target value | 20 |
    When KZ replaces the units of notice "N3" with AAU of period 1
    Then the transaction is TERMINATED with response code 4014
    And the books of KZ are unchanged
    And notice "N3" is OPEN at the ITL

  @H-364
  Scenario: A replacement of tCERs with lCERs, a type not eligible to replace them, is terminated with 4004
    Given Party KZ has base-year emissions of 1 000 000 for period 1
    And a person holding account "Plot" in KZ
    And the CDM registry has issued 50 TCER of period 1 for project "CDM-AR-R4" to "Plot"
    And the CDM registry has issued 100 LCER of period 1 for project "CDM-AR-R5" to "KZ Party holding account"
    And the ITL has issued notice "N3" to KZ listing the TCER blocks of "Plot":
      | notice type  | 3  |
      | target value | 49 |
    When KZ replaces the units of notice "N3" with LCER of period 1
    Then the transaction is TERMINATED with response code 4004
    And the books of KZ are unchanged
    And notice "N3" is OPEN at the ITL

  @H-365
  Scenario: tCERs already replaced cannot be replaced again (3008)
    Given Party KZ has base-year emissions of 1 000 000 for period 1
    And KZ holds at least 20 000 AAU of period 1 in its Party holding account
    And a person holding account "Plot" in KZ
    And the CDM registry has issued 50 TCER of period 1 for project "CDM-AR-R6" to "Plot"
    And the ITL has issued notice "N3" to KZ listing the TCER blocks of "Plot":
      | notice type  | 3  |
      | target value | 49 |
    When KZ replaces the units of notice "N3" with AAU of period 1
    Then the transaction is COMPLETED
    And "KZ tcer replacement expiry account of period 1" gained 49 AAU
    And notice "N3" is COMPLETED at the ITL
    When KZ replaces the units of notice "N3" with AAU of period 1
    Then the request is refused with HTTP 422 and response code 3008
    And the refusal says "already replaced"
    And the books of KZ are unchanged

  @H-361
  Scenario: Retired tCERs get an impending expiry notice and are replaced with AAUs
    Given Party KZ has base-year emissions of 1 000 000 for period 1
    And KZ holds at least 20 000 AAU of period 1 in its Party holding account
    And the CDM registry has issued 1 000 TCER of period 1 for project "CDM-AR-T1" to "KZ Party holding account"
    When KZ retires 600 TCER of period 1
    Then the transaction is COMPLETED
    When the simulation clock moves to 2020-12-05
    Then KZ has a notice of type 3 with target value 600
    And KZ has received notice "type 3" requiring "replace"
    When KZ replaces the units of notice "type 3" with LCER of period 1
    Then the request is refused with HTTP 422 and response code 3002
    And the books of KZ are unchanged
    When KZ replaces the units of notice "type 3" with AAU of period 1
    Then the transaction is COMPLETED
    And the transaction is of type 6
    And "KZ tcer replacement expiry account of period 1" gained 600 AAU
    And notice "type 3" is COMPLETED at the ITL

  @H-362
  Scenario: tCERs past their expiry date can no longer be transferred (3007)
    Given a person holding account "Alice" in KZ
    When the simulation clock moves to 2021-01-02
    And "KZ Party holding account" transfers 10 TCER of period 1 to "Alice"
    Then the request is refused with HTTP 422 and response code 3007
    And the refusal says "have expired"
