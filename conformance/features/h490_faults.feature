Feature: 12 Faults and recovery (H-490 to H-499)
  A service killed or paused in the middle of a flow loses nothing committed:
  the flow completes once it is back, exactly once.

  @H-491
  Scenario: A transfer proposed while the ITL is paused completes once it resumes
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When the ITL service is paused
    And "KZ Party holding account" transfers 20 AAU of period 2 to "Alice"
    And the ITL service is resumed
    Then the transaction is COMPLETED
    And "Alice" holds 20 AAU of period 2

  @H-492 @restarts-services
  Scenario: A registry killed right after proposing completes the transfer once after its restart
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When "KZ Party holding account" transfers 30 AAU of period 2 to "Alice"
    And the KZ service is killed
    And the KZ service is restarted
    Then the transaction is COMPLETED
    And "Alice" holds 30 AAU of period 2
    And the ITL's register agrees with the books of KZ

  @H-493
  Scenario: An external transfer whose acquiring registry is paused completes once it resumes
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Zora" in CH
    When the CH service is paused
    And "KZ Party holding account" transfers 60 AAU of period 2 to "Zora"
    And the CH service is resumed
    Then the transaction is COMPLETED
    And CH records the inbound transaction as COMPLETED
    And "Zora" holds 60 AAU of period 2
    And the share of proceeds of KZ is settled

  @H-494 @restarts-services
  Scenario: A proposal lost on its way to the ITL is asked about and submitted again with one effect
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When the ITL service is killed
    And "KZ Party holding account" transfers 55 AAU of period 2 to "Alice"
    And the messages waiting for the ITL service are dropped
    And the ITL service is restarted
    And the simulation clock moves on 2 hours
    Then the transaction is COMPLETED
    And the transaction's history in KZ is 1, 2, 4
    And "Alice" holds 55 AAU of period 2
    And the ITL's register agrees with the books of KZ

  @H-495 @restarts-broker
  Scenario: A transfer proposed while the broker is stopped completes once it is started, exactly once
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When the broker is stopped
    And "KZ Party holding account" transfers 25 AAU of period 2 to "Alice"
    And the broker is started
    Then the transaction is COMPLETED
    And the transaction's history in KZ is 1, 2, 4
    And "Alice" holds 25 AAU of period 2
    And "KZ Party holding account" lost 25 AAU
    And the ITL's register agrees with the books of KZ

  @H-496 @restarts-broker
  Scenario: An external transfer the broker stops in the middle of completes once, in every book
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Zora" in CH
    When the CH service is paused
    And "KZ Party holding account" transfers 70 AAU of period 2 to "Zora"
    And the transaction has reached status CHECKED_NO_DISCREPANCY at the ITL
    And the broker is stopped
    And the CH service is resumed
    And the broker is started
    Then the transaction is COMPLETED
    And CH records the inbound transaction as COMPLETED
    And "Zora" holds 70 AAU of period 2
    And the share of proceeds of KZ is settled
    And the ITL's register agrees with the books of KZ
    And the ITL's register agrees with the books of CH
