Feature: 99 A tester's own scenarios (copy into conformance/features to run)

  @H-998
  Scenario: Alice sells AAUs to a Swiss buyer
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And a person holding account "Alice" in KZ holding 5 000 AAU of period 2
    And a person holding account "Zora" in CH
    When "Alice" transfers 1 200 AAU of period 2 to "Zora"
    Then the transaction is COMPLETED
    # 2 % of a first international transfer of period-2 AAUs goes to the Adaptation Fund
    And the share of proceeds of KZ is settled
    And "Alice" holds 3 776 AAU of period 2
    And "Zora" holds 1 200 AAU of period 2
    And the ITL's register agrees with the books of CH

  @H-999
  Scenario: Alice sells AAUs to a Japanese buyer
    Given a person holding account "Alice" in KZ holding 5 000 AAU of period 2
    And a person holding account "Taro" in JP
    When "Alice" transfers 1 200 AAU of period 2 to "Taro"
    Then the transaction is COMPLETED
    And "Taro" holds 1 200 AAU of period 2
