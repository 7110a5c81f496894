Feature: 04 Conversion (H-220 to H-239)
  AAUs of the Party holding account become ERUs of a JI project: track 1 on a
  national decision, track 2 on the JISC's determination.

  Background:
    Given KZ holds at least 20 000 AAU of period 2 in its Party holding account

  @H-221
  Scenario: A track-1 conversion on a decision turns AAUs into ERUs
    When KZ converts 1 000 AAU of period 2 into ERUs for project "KZ-JI-C1" under track 1
    Then the transaction is COMPLETED
    And the transaction is of type 2
    And "KZ Party holding account" lost 1 000 AAU
    And the share of proceeds of KZ is settled
    And the ITL's register agrees with the books of KZ

  @H-222
  Scenario: A track-2 conversion without a JISC determination is terminated with 4002
    When KZ converts 500 AAU of period 2 into ERUs for project "KZ-JI-C2" under track 2
    Then the transaction is TERMINATED with response code 4002
    And the books of KZ are unchanged

  @H-223
  Scenario: A track-2 conversion within the JISC's determination is completed
    Given a JI project "KZ-JI-C3" of KZ approved under track 2 for 500 units
    When KZ converts 500 AAU of period 2 into ERUs for project "KZ-JI-C3" under track 2
    Then the transaction is COMPLETED
    And "KZ Party holding account" lost 500 AAU
    And the share of proceeds of KZ is settled
