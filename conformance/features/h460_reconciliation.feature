Feature: 11 Reconciliation (H-460 to H-489)
  The ITL compares its register with a registry's books at one instant: totals,
  then unit blocks, then the audit trail where they differ.

  @H-461
  Scenario: A registry whose books agree with the ITL reconciles to ITL completed
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    When the ITL reconciles KZ
    Then the reconciliation ends with status 5
    And the reconciliation flagged no unit block

  @H-462
  Scenario: The CDM registry reconciles with the ITL too
    When the ITL reconciles CDM
    Then the reconciliation ends with status 5

  @H-463
  Scenario: A registry set inconsistent as a whole has its proposals terminated with 1203
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When the ITL sets KZ inconsistent
    And "KZ Party holding account" transfers 10 AAU of period 2 to "Alice"
    Then the transaction is TERMINATED with response code 1203
    And the books of KZ are unchanged
    When the ITL sets KZ consistent again
    And "KZ Party holding account" transfers 10 AAU of period 2 to "Alice"
    Then the transaction is COMPLETED
