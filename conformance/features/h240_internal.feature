Feature: 05 Internal transfer (H-240 to H-259)
  Units move between two accounts of one registry after the ITL's check.

  Background:
    Given KZ holds at least 50 000 AAU of period 2 in its Party holding account

  @H-241
  Scenario: An internal transfer between two holders moves the units block by block
    Given a person holding account "Alice" in KZ holding 3 000 AAU of period 2
    And a person holding account "Bob" in KZ
    When "Alice" transfers 2 000 AAU of period 2 to "Bob"
    Then the transaction is COMPLETED
    And the transaction is of type 10
    And the transaction's history in KZ is 1, 2, 4
    And "Alice" holds 1 000 AAU of period 2
    And "Bob" holds 2 000 AAU of period 2
    And every block "Bob" holds is one of:
      | unit type | original period | applicable period | originating registry |
      | AAU       | 2               | 2                 | KZ                   |
    And the ITL's register agrees with the books of KZ

  @H-242
  Scenario: A transfer of more units than the account holds is refused with 3002
    Given a person holding account "Alice" in KZ holding 100 AAU of period 2
    And a person holding account "Bob" in KZ
    When "Alice" transfers 101 AAU of period 2 to "Bob"
    Then the request is refused with HTTP 422 and response code 3002
    And the books of KZ are unchanged

  @H-243
  Scenario: A transfer to an account the registry does not have is refused with 5902
    Given a person holding account "Alice" in KZ holding 100 AAU of period 2
    When "Alice" transfers 10 AAU of period 2 to KZ account 999999
    Then the request is refused with HTTP 422 and response code 5902
    And the books of KZ are unchanged

  @H-244
  Scenario: A transfer out of a blocked account is refused
    Given a person holding account "Alice" in KZ holding 100 AAU of period 2
    And a person holding account "Bob" in KZ
    And the account "Alice" is blocked
    When "Alice" transfers 10 AAU of period 2 to "Bob"
    Then the request is refused with HTTP 422 and response code 2007
    And the books of KZ are unchanged
