// Lint of the chat page's ES modules (browser) and their unit tests (node --test).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "staticfiles/", "test-output/", ".venv/"] },
  js.configs.recommended,
  {
    files: ["gateway_app/static/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/js/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals.node },
  },
  {
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "smart"],
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: "Build nodes with textContent: no HTML from data." },
        { property: "outerHTML", message: "Build nodes with textContent: no HTML from data." },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "MemberExpression[property.name='insertAdjacentHTML']",
          message: "Build nodes with textContent: no HTML from data.",
        },
      ],
    },
  },
  {
    // Wire codes are named once, in protocol.js.
    files: ["gateway_app/static/gateway_app/chat.js", "gateway_app/static/gateway_app/chat/**/*.js"],
    ignores: ["gateway_app/static/gateway_app/chat/protocol.js"],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector: "MemberExpression[property.name='insertAdjacentHTML']",
          message: "Build nodes with textContent: no HTML from data.",
        },
        {
          selector: "Literal[raw=/^(1009|4\\d{3}|326\\d\\d|327\\d\\d)$/]",
          message: "Use the ErrorCode/CloseCode names of protocol.js.",
        },
      ],
    },
  },
];
