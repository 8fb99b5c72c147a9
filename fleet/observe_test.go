package fleet

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kforge/kforge/internal/testutil"
)

// TestRefused: the errors a real API client gets from an apiserver that refuses it are
// told apart from the ones worth waiting out.
func TestRefused(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","code":%d}`, code)))
		}
	}
	serverCA := func(srv *httptest.Server) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "https://" + closed.Addr().String()
	closed.Close()

	tests := []struct {
		name       string
		handler    http.HandlerFunc
		url        string // instead of the server's
		ca         func(*httptest.Server) []byte
		serverName string
		wantOK     bool
		wantTLS    bool
	}{
		{name: "401 Unauthorized", handler: status(http.StatusUnauthorized), ca: serverCA, wantOK: true},
		{name: "403 Forbidden", handler: status(http.StatusForbidden), ca: serverCA, wantOK: true},
		{name: "a CA that did not sign the server's certificate", handler: status(http.StatusOK), ca: func(*httptest.Server) []byte { return testutil.CAPEM(t) }, wantOK: true, wantTLS: true},
		{name: "a certificate for another name", handler: status(http.StatusOK), ca: serverCA, serverName: "apiserver.other.example", wantOK: true, wantTLS: true},
		{name: "503 while the apiserver starts", handler: status(http.StatusServiceUnavailable), ca: serverCA},
		{name: "connection refused", url: closedURL, ca: serverCA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
			srv.StartTLS()
			defer srv.Close()
			url := srv.URL
			if tc.url != "" {
				url = tc.url
			}
			cs, err := kubernetes.NewForConfig(&rest.Config{Host: url, BearerToken: "t", TLSClientConfig: rest.TLSClientConfig{CAData: tc.ca(srv), ServerName: tc.serverName}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
			if err == nil {
				t.Fatal("List succeeded")
			}
			tlsErr, ok := refused(err)
			if ok != tc.wantOK || tlsErr != tc.wantTLS {
				t.Errorf("refused(%v) = tls %v, refused %v; want tls %v, refused %v", err, tlsErr, ok, tc.wantTLS, tc.wantOK)
			}
		})
	}
}
