Feature: 08 Retirement (H-320 to H-339)
  Units are retired towards the Party's commitment on a decision of the authorised
  body taken after the end of the period.

  Background:
    Given KZ holds at least 20 000 AAU of period 1 in its Party holding account

  @H-321
  Scenario: A retirement on a decision moves the units to the retirement account
    When KZ retires 2 500 AAU of period 1
    Then the transaction is COMPLETED
    And the transaction is of type 5
    And "KZ retirement account of period 1" gained 2 500 AAU
    And the ITL's register agrees with the books of KZ

  @H-322
  Scenario: A retirement of more units than the Party holds is refused with 3002
    When KZ retires 1 000 000 000 AAU of period 1
    Then the request is refused with HTTP 422 and response code 3002
    And the books of KZ are unchanged

  @H-323
  Scenario: A retirement is not decided before the end of the units' commitment period
    Given KZ holds at least 1 000 AAU of period 2 in its Party holding account
    When KZ retires 100 AAU of period 2
    Then the request is refused with HTTP 422
    And the refusal says "after the end of the commitment period"
    And the books of KZ are unchanged
