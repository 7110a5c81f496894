Feature: 10 Time-outs (H-430 to H-459)
  A transaction left unanswered past the ITL's time-out (24 simulated hours) is
  terminated in every book.

  @H-431 @restarts-services
  Scenario: The ITL terminates an external transfer the acquiring registry leaves unanswered
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Zora" in CH
    When the CH service is killed
    And "KZ Party holding account" transfers 50 AAU of period 2 to "Zora"
    And the ITL has forwarded the transaction to the acquiring registry
    And the simulation clock moves on 25 hours
    Then the transaction is TERMINATED with response code 1104
    And the books of KZ are unchanged
    When the CH service is restarted
    Then CH records the inbound transaction as TERMINATED
    And "Zora" holds nothing

  @H-432
  Scenario: A paused acquiring registry past the time-out ends the transfer terminated in every book
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Zora" in CH
    When the CH service is paused
    And "KZ Party holding account" transfers 40 AAU of period 2 to "Zora"
    And the ITL has forwarded the transaction to the acquiring registry
    And the simulation clock moves on 25 hours
    Then the transaction is TERMINATED with response code 1104
    And the ITL records the transaction as TERMINATED
    When the CH service is resumed
    Then CH records the inbound transaction as TERMINATED
    And "Zora" holds nothing

  @H-433 @restarts-services
  Scenario: The ITL's approval reaching the proposer past its deadline is not acted on: the transfer ends timed out
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Alice" in KZ
    When the ITL service is killed
    And "KZ Party holding account" transfers 35 AAU of period 2 to "Alice"
    And a message waits for the ITL service
    And the KZ service is paused
    And the ITL service is restarted
    And the transaction has reached status CHECKED_NO_DISCREPANCY at the ITL
    And the simulation clock moves on 25 hours
    And the KZ service is resumed
    Then the transaction is TERMINATED with response code 1104
    And the ITL records the transaction as TERMINATED
    And "Alice" holds nothing
    And the books of KZ are unchanged
    And the ITL's register agrees with the books of KZ

  @H-434 @restarts-services
  Scenario: An accepted external transfer the proposer completes too late ends terminated in both books
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And a person holding account "Zora" in CH
    When the ITL service is killed
    And "KZ Party holding account" transfers 45 AAU of period 2 to "Zora"
    And a message waits for the ITL service
    And the KZ service is paused
    And the ITL service is restarted
    And the transaction has reached status ACCEPTED at the ITL
    And the simulation clock moves on 25 hours
    And the KZ service is resumed
    Then the transaction is TERMINATED with response code 1104
    And the ITL records the transaction as TERMINATED
    And CH records the inbound transaction as TERMINATED
    And "Zora" holds nothing
    And the books of KZ are unchanged
    And the ITL's register agrees with the books of KZ
    And the ITL's register agrees with the books of CH
