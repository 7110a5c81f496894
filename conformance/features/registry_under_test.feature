@registry-under-test
Feature: 16 The registry under test (numbers in the ranges of their categories)
  Another Party's registry, built elsewhere, put through the plan over the wire alone:
  make conformance CONFORMANCE_REGISTRY=<code>. The ITL forwards it transfers and
  reconciles it (unattended); what it must start itself, the tester does in it when the
  runner says so, and the runner waits for the message at the ITL (attended): an
  external transfer, a cancellation on a notice, a status query. It has an
  open person holding account (holding), a closed one (closed), and does not have the
  number of the unknown one (README: Put another registry through it).

  Background:
    Given Party KZ has an assigned amount of 10 000 000 for period 2 and a reviewed inventory of 100
    And KZ holds at least 5 000 AAU of period 2 in its Party holding account

  @H-285
  Scenario: The registry under test accepts an external transfer into an open account
    Given a person holding account "Alice" in KZ holding 1 000 AAU of period 2
    When "Alice" transfers 100 AAU of period 2 to the registry under test's holding account
    Then the transaction is COMPLETED
    And the ITL records the transaction as COMPLETED
    And the share of proceeds of KZ is settled
    And "Alice" holds 898 AAU of period 2

  @H-286
  Scenario: The registry under test rejects a transfer to an account it does not have with 5902
    Given a person holding account "Alice" in KZ holding 1 000 AAU of period 2
    When "Alice" transfers 100 AAU of period 2 to the registry under test's unknown account
    Then the transaction is TERMINATED with response code 5902
    And "Alice" holds 1 000 AAU of period 2

  @H-287
  Scenario: The registry under test rejects a transfer to a closed account with 5906
    Given a person holding account "Alice" in KZ holding 1 000 AAU of period 2
    When "Alice" transfers 100 AAU of period 2 to the registry under test's closed account
    Then the transaction is TERMINATED with response code 5906

  @H-288
  Scenario: The registry under test proposes an external transfer (attended)
    Given the registry under test has received 20 AAU of period 2 into its holding account
    And a person holding account "Bob" in KZ
    When the tester has the registry under test transfer 10 AAU of period 2 from its holding account to "Bob"
    Then the ITL records the transaction of the registry under test as COMPLETED
    And "Bob" holds 10 AAU of period 2

  @H-425
  Scenario: The registry under test cancels units on a non-compliance notice (attended)
    Given the registry under test has received 20 AAU of period 2 into its holding account
    And the ITL has issued notice "N2" to the registry under test:
      | notice type       | 2          |
      | target value      | 5          |
      | commitment period | 2          |
      | unit type         | AAU        |
      | action due date   | 2030-12-31 |
    When the tester has the registry under test cancel 5 AAU of period 2 from its holding account into account type 220 on notice "N2"
    Then the ITL records the transaction of the registry under test as COMPLETED
    And notice "N2" is COMPLETED at the ITL

  @H-149
  Scenario: The registry under test asks the ITL for a transaction's status (attended)
    Given the registry under test has received 10 AAU of period 2 into its holding account
    When the tester has the registry under test ask the ITL for the status of the transaction
    Then the ITL has answered the registry under test that the transaction is COMPLETED

  @H-489
  Scenario: The registry under test's books agree with the ITL's register
    Given the registry under test has received 30 AAU of period 2 into its holding account
    When the ITL reconciles the registry under test
    Then the reconciliation ends with status 5
    And the reconciliation flagged no unit block
