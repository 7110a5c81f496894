Feature: 07 Cancellation (H-300 to H-319)
  Units leave circulation for a cancellation account of their period: voluntarily
  on a decision, or on an ITL notice.

  Background:
    Given KZ holds at least 20 000 AAU of period 1 in its Party holding account

  @H-301
  Scenario: A voluntary cancellation of period-1 AAUs on a decision is completed
    When KZ cancels 1 000 AAU of period 1 into its voluntary cancellation account
    Then the transaction is COMPLETED
    And the transaction is of type 4
    And "KZ voluntary cancellation account of period 1" gained 1 000 AAU
    And "KZ Party holding account" lost 1 000 AAU

  @H-302
  Scenario: A cancellation is not decided before the end of the units' commitment period
    When KZ cancels 100 AAU of period 2 into its voluntary cancellation account
    Then the request is refused with HTTP 422
    And the refusal says "after the end of the commitment period"
    And the books of KZ are unchanged

  @H-303
  Scenario: A cancellation on a non-compliance notice must go to the non-compliance account
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And the ITL has issued notice "N1" to KZ:
      | notice type       | 2          |
      | target value      | 300        |
      | commitment period | 2          |
      | action due date   | 2030-12-31 |
    When KZ cancels 300 AAU of period 2 into account type 230 on notice "N1"
    Then the transaction is TERMINATED with response code 4005
    And the books of KZ are unchanged
    When KZ cancels 300 AAU of period 2 into account type 220 on notice "N1"
    Then the transaction is COMPLETED
    And notice "N1" is COMPLETED at the ITL
