Feature: 06 External transfer (H-260 to H-289)
  Units leave one registry for another through the ITL, which checks them and
  forwards the proposal to the acquiring registry; both directions.

  Background:
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 1 000
    And Party CH has an assigned amount of 1 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 50 000 AAU of period 2 in its Party holding account

  @H-261
  Scenario: An external transfer from KZ to CH is accepted and completed in all three books
    Given a person holding account "Zora" in CH
    When "KZ Party holding account" transfers 3 000 AAU of period 2 to "Zora"
    Then the transaction is COMPLETED
    And the transaction is of type 3
    And the transaction's history in KZ is PROPOSED, ACCEPTED, COMPLETED
    And CH records the inbound transaction as COMPLETED
    And the ITL records the transaction as COMPLETED
    And "Zora" holds 3 000 AAU of period 2
    And every block "Zora" holds is one of:
      | unit type | originating registry | original period | applicable period |
      | AAU       | KZ                   | 2               | 2                 |
    And the share of proceeds of KZ is settled
    And the ITL's register agrees with the books of KZ
    And the ITL's register agrees with the books of CH

  @H-262
  Scenario: An external transfer from CH to KZ is completed in the other direction
    Given CH holds at least 5 000 AAU of period 2 in its Party holding account
    And a person holding account "Aigerim" in KZ
    When "CH Party holding account" transfers 1 000 AAU of period 2 to "Aigerim"
    Then the transaction is COMPLETED
    And KZ records the inbound transaction as COMPLETED
    And "Aigerim" holds 1 000 AAU of period 2
    And the share of proceeds of CH is settled
    And the ITL's register agrees with the books of CH

  @H-263
  Scenario: A transfer of period-2 units to a Party without a period-2 commitment is terminated with 4006
    Given a person holding account "Taro" in JP
    When "KZ Party holding account" transfers 100 AAU of period 2 to "Taro"
    Then the transaction is TERMINATED with response code 4006
    And the books of KZ are unchanged
    And "Taro" holds nothing

  @H-264
  Scenario: A transfer to an account the acquiring registry does not have is terminated with 5902
    When "KZ Party holding account" transfers 10 AAU of period 2 to CH account 424242
    Then the transaction is TERMINATED with response code 5902
    And the books of KZ are unchanged

  @H-265
  Scenario: A transfer that would take the Party below its commitment period reserve is terminated with 5001
    Given CH holds at least 1 000 AAU of period 2 in its Party holding account
    And Party CH has an assigned amount of 100 000 000 for period 2 and a reviewed inventory of 10 000 000
    And a person holding account "Amir" in KZ
    When "CH Party holding account" transfers 100 AAU of period 2 to "Amir"
    Then the transaction is TERMINATED with response code 5001
    And the books of CH are unchanged

  @H-266
  Scenario: ERUs leave the registry only on a decision of the authorised body
    Given a person holding account "Zeno" in CH
    When KZ converts 1 000 AAU of period 2 into ERUs for project "KZ-JI-E6" under track 1
    Then the transaction is COMPLETED
    And the share of proceeds of KZ is settled
    When "KZ Party holding account" transfers 100 ERU_FROM_AAU of period 2 to "Zeno"
    Then the request is refused with HTTP 422 and response code 2001
    And the books of KZ are unchanged
    When the authorised body of KZ decides the external transfer of 100 ERU_FROM_AAU of period 2 as "MEP-ERU-1"
    And on decision "MEP-ERU-1", "KZ Party holding account" transfers 100 ERU_FROM_AAU of period 2 to "Zeno"
    Then the transaction is COMPLETED
    And "Zeno" holds 100 ERU_FROM_AAU of period 2
    And the share of proceeds of KZ is settled

  @H-267
  Scenario: An external transfer awaits the second representative's approval and proposes nothing before it
    Given a person holding account "Alice" in KZ holding 100 AAU of period 2
    And a person holding account "Zora" in CH
    When KZ proposes an operation awaiting approval: "Alice" transfers 10 AAU of period 2 to "Zora"
    Then the operation awaits approval
    And the books of KZ are unchanged
    And "Zora" holds nothing
