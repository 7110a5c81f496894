Feature: 03 Issuance (H-200 to H-219)
  AAUs are issued on a decision of the authorised body into the Party holding
  account, within the assigned amount the ITL knows.

  Background:
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 1 000

  @H-201
  Scenario: An AAU issuance on a decision is completed after the ITL's check
    When KZ issues 5 000 AAU of period 2
    Then the transaction is COMPLETED
    And the transaction is of type 1
    And the transaction's history in KZ is PROPOSED, CHECKED_NO_DISCREPANCY, COMPLETED
    And "KZ Party holding account" gained 5 000 AAU
    And the ITL's register agrees with the books of KZ

  @H-202
  Scenario: An issuance beyond the assigned amount is terminated with 4001
    When KZ issues 1 AAU more than the rest of its assigned amount for period 2
    Then the transaction is TERMINATED with response code 4001
    And the books of KZ are unchanged

  @H-203
  Scenario: An issuance decided and proposed in two steps issues the decided quantity
    Given the authorised body of KZ has decided the issuance of 700 AAU of period 2 as "MEP order 1"
    When KZ issues the units of decision "MEP order 1"
    Then the transaction is COMPLETED
    And "KZ Party holding account" gained 700 AAU
