Feature: 14 Expiry date change (H-380 to H-399)
  The expiry date of lCERs a notice 9 lists changes in place, in the registry and in
  the ITL's register.

  Background:
    Given Party KZ has base-year emissions of 1 000 000 for period 1

  @H-381
  Scenario: The expiry date of listed lCERs changes on a notice
    Given a person holding account "Forest" in KZ
    And the CDM registry has issued 100 LCER of period 1 for project "CDM-AR-X1" to "Forest"
    # the CDM registry keeps 2 % as the share of proceeds: "Forest" gets 98
    And the ITL has issued notice "N9" to KZ listing the LCER blocks of "Forest":
      | notice type  | 9                          |
      | target value | 98                         |
      | text         | crediting period renewed   |
    When KZ changes the expiry date of the units of notice "N9" in "Forest" to 2037-06-30
    Then the transaction is COMPLETED
    And the transaction is of type 8
    And "Forest" holds the blocks:
      | unit type | expiry date |
      | LCER      | 2037-06-30  |
    And notice "N9" is COMPLETED at the ITL

  @H-382
  Scenario: An expiry date in the past is terminated with 4012
    Given a person holding account "Grove" in KZ
    And the CDM registry has issued 50 LCER of period 1 for project "CDM-AR-X2" to "Grove"
    And the ITL has issued notice "N10" to KZ listing the LCER blocks of "Grove":
      | notice type  | 9  |
      | target value | 49 |
    When KZ changes the expiry date of the units of notice "N10" in "Grove" to 2000-01-01
    Then the transaction is TERMINATED with response code 4012
    And the books of KZ are unchanged

  @H-383
  Scenario: An expiry date change of units that are neither tCERs nor lCERs is refused with 2004
    Given a person holding account "Field" in KZ
    And the CDM registry has issued 50 CER of period 1 for project "CDM-X3" to "Field"
    And the ITL has issued notice "N11" to KZ listing the CER blocks of "Field":
      | notice type  | 9  |
      | target value | 49 |
    When KZ changes the expiry date of the units of notice "N11" in "Field" to 2037-06-30
    Then the request is refused with HTTP 422 and response code 2004
    And the refusal says "cannot take CER units"
    And the books of KZ are unchanged

  @H-384
  Scenario: An expiry date change of more lCERs than the notice asks for is terminated with 4014
    Given a person holding account "Copse" in KZ
    And the CDM registry has issued 50 LCER of period 1 for project "CDM-AR-X4" to "Copse"
    And the ITL has issued notice "N12" to KZ listing the LCER blocks of "Copse":
      | notice type  | 9  |
      | target value | 20 |
    When KZ changes the expiry date of the units of notice "N12" in "Copse" to 2037-06-30
    Then the transaction is TERMINATED with response code 4014
    And the books of KZ are unchanged
    And notice "N12" is OPEN at the ITL
