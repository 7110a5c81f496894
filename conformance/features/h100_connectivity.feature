Feature: 01 Connectivity (H-100 to H-119)
  Every service of the stack answers, knows the others and refuses callers it
  cannot identify.

  @H-101
  Scenario: The ITL, the national registries and the CDM registry answer their health check
    When the anonymous caller asks ITL for /health
    Then the answer has HTTP status 200
    When the anonymous caller asks KZ for /health
    Then the answer has HTTP status 200
    When the anonymous caller asks CH for /health
    Then the answer has HTTP status 200
    When the anonymous caller asks CDM for /health
    Then the answer has HTTP status 200

  @H-102
  Scenario: The ITL knows every registry of the stack
    When the operator asks ITL for /registries
    Then the answer has HTTP status 200
    And the answer lists "KZ"
    And the answer lists "CH"
    And the answer lists "JP"
    And the answer lists "CDM"

  @H-103
  Scenario: A caller without a bearer token is refused with 401
    When the anonymous caller asks KZ for /accounts
    Then the request is refused with HTTP 401
    And the refusal says "bearer token"

  @H-104
  Scenario: Every service tells its simulation clock
    When the operator asks ITL for /admin/clock
    Then the answer has HTTP status 200
    And the answer lists "now"
    When the operator asks KZ for /admin/clock
    Then the answer has HTTP status 200
