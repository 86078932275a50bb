// Validates an OpenAPI document with swagger-parser (structure against the
// OpenAPI 3 schema, then every $ref resolved): tests/integration/test_openapi.py
// runs it over the live /openapi.json.  Usage: node validate.mjs FILE
import SwaggerParser from '@apidevtools/swagger-parser';

try {
  const api = await SwaggerParser.validate(process.argv[2]);
  console.log(`valid: ${api.info.title} ${api.info.version}, ${Object.keys(api.paths).length} paths`);
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
