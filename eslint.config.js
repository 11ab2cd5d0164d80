// Lint of the chat page's ES modules (browser) and their unit tests (node --test).
import js from "@eslint/js";
import globals from "globals";

const NO_HTML = "Build nodes with textContent: no HTML from data.";
const NO_ADJACENT_HTML = { selector: "MemberExpression[property.name='insertAdjacentHTML']", message: NO_HTML };
const NO_WIRE_CODES = {
  selector: "Literal[raw=/^(1009|4\\d{3}|326\\d\\d|327\\d\\d)$/]",
  message: "Use the ErrorCode/CloseCode names of protocol.js.",
};

export default [
  {
    ignores: ["node_modules/", "staticfiles/", "test-output/", ".venv/", "gateway_app/static/gateway_app/vendor/"],
  },
  js.configs.recommended,
  {
    files: ["gateway_app/static/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/js/**/*.mjs", "scripts/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals.node },
  },
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "smart"],
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: NO_HTML },
        { property: "outerHTML", message: NO_HTML },
      ],
      "no-restricted-syntax": ["error", NO_ADJACENT_HTML],
    },
  },
  {
    // Wire codes are named once, in protocol.js.
    files: ["gateway_app/static/gateway_app/chat.js", "gateway_app/static/gateway_app/chat/**/*.js"],
    ignores: ["gateway_app/static/gateway_app/chat/protocol.js"],
    rules: {
      "no-restricted-syntax": ["error", NO_ADJACENT_HTML, NO_WIRE_CODES],
    },
  },
  {
    // The one exception to "no HTML": insertSanitizedHtml in render.js sets innerHTML to a
    // reply's Markdown after DOMPurify.sanitize. innerHTML anywhere else, in this file too,
    // stays an error.
    files: ["gateway_app/static/gateway_app/chat/render.js"],
    rules: {
      "no-restricted-properties": ["error", { property: "outerHTML", message: NO_HTML }],
      "no-restricted-syntax": [
        "error",
        NO_ADJACENT_HTML,
        NO_WIRE_CODES,
        {
          selector:
            "MemberExpression[property.name='innerHTML']:not(FunctionDeclaration[id.name='insertSanitizedHtml'] MemberExpression)",
          message: `${NO_HTML} (Only insertSanitizedHtml may set innerHTML.)`,
        },
      ],
    },
  },
];
