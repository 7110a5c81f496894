Feature: 13 Carry-over (H-340 to H-359)
  Period-1 units are carried over into period 2 once the first period's true-up has
  ended: AAUs into the previous period surplus reserve, CERs within 2.5 % of the
  assigned amount. (Runs after the features above: it moves the clock to 2015.)

  Background:
    Given KZ holds at least 20 000 AAU of period 1 in its Party holding account

  @H-341
  Scenario: A carry-over before the end of the true-up is refused with 4015
    When KZ carries over 1 000 AAU of period 1
    Then the request is refused with HTTP 422 and response code 4015
    And the books of KZ are unchanged

  @H-342
  Scenario: Period-1 AAUs are carried over into the previous period surplus reserve
    Given the simulation clock stands at or after 2015-11-19
    When KZ carries over 10 000 AAU of period 1
    Then the transaction is COMPLETED
    And the transaction is of type 7
    And "KZ previous period surplus reserve account" holds the blocks:
      | unit type | quantity | original period | applicable period |
      | AAU       | 10000    | 1               | 2                 |

  @H-343
  Scenario: A CER carry-over beyond 2.5 % of the assigned amount is terminated with 4003
    Given the simulation clock stands at or after 2015-11-19
    And Party KZ has an assigned amount of 500 000 for period 1
    And the CDM registry has issued 13 000 CER of period 1 for project "CDM-CO-1" to "KZ Party holding account"
    When KZ carries over 12 501 CER of period 1
    Then the transaction is TERMINATED with response code 4003
    And the books of KZ are unchanged
    When KZ carries over 12 500 CER of period 1
    Then the transaction is COMPLETED
    And "KZ Party holding account" holds 12 500 CER of period 2
