Feature: 09 Notices (H-400 to H-429)
  The ITL's notices reach the registry, which states the action each requires;
  a notice is completed by the transactions that fulfil it.

  @H-401
  Scenario: Recording a Party's assigned amount and inventory sends the commitment period reserve notice
    Given Party JP has an assigned amount of 1 000 000 for period 1 and a reviewed inventory of 20 000
    Then JP has a notice of type 7 with target value 100 000
    And JP has received notice "type 7" requiring "informs"

  @H-402
  Scenario: A non-compliance notice tells the registry where the units must go
    When the ITL issues notice "N2" to KZ:
      | notice type       | 2          |
      | target value      | 100        |
      | commitment period | 2          |
      | action due date   | 2030-12-31 |
      | text              | non-compliance |
    Then KZ has received notice "N2" requiring "non-compliance cancellation account"
    And notice "N2" is OPEN at the ITL

  @H-403
  Scenario: A net source cancellation notice is fulfilled by a cancellation quoting it
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    And the ITL has issued notice "N3" to KZ:
      | notice type       | 1          |
      | target value      | 40         |
      | commitment period | 2          |
      | action due date   | 2030-12-31 |
    When KZ cancels 40 AAU of period 2 into account type 210 on notice "N3"
    Then the transaction is COMPLETED
    And notice "N3" is COMPLETED at the ITL
    And "KZ net source cancellation account" gained 40 AAU

  @H-404
  Scenario: A notice of a type the DES does not define is refused by the ITL
    When the ITL issues notice "N4" to KZ:
      | notice type  | 99  |
      | target value | 10  |
    Then the request is refused with HTTP 422
